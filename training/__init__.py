"""Training container code: the SageMaker training contract around a PyTorch tabular classifier.

`python -m training train` is what SageMaker runs; see training/README.md for the layout it reads and writes.
"""

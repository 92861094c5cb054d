"""The error type for problems a user caused (bad hyperparameters, data or layout)."""


class TrainingInputError(Exception):
    """A problem with the job's inputs; its message goes to /opt/ml/output/failure as is."""

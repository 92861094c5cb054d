"""Benchmark competitor (c): Multi Model Server with one worker, started the way SageMaker's toolkits start it."""

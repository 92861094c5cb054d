"""Other HTTP stacks around the same InferenceApp, measured against serving/server.py to choose the stack."""

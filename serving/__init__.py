"""The serving container: answers SageMaker's hosting contract (/ping, /invocations) with an ONNX model.

decode (codec) -> predict (model) -> encode (codec) are pure functions; server and supervisor add HTTP
and the process model around them.
"""

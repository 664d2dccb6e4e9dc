"""Model registry: trained model versions, their artefacts, and ONNX prediction."""

"""Training data, the training loop, validation, distillation teachers, shipping and the notebooks'
set-up. Imports the layers below."""

"""emer_jax: eye-behaviour-aided multimodal emotion recognition in JAX/Flax."""

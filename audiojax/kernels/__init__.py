"""CPU kernels that XLA does not generate well, called through XLA's FFI."""

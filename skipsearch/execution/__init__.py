"""Generation and execution: devices, precision, acceleration, sampling batches."""

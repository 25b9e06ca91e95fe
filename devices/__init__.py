"""Device profiles and executors (the host CPU is the only device so far)."""

"""Test helpers of servegate itself (the client stub server); never a stand-in for vLLM in a benchmark."""

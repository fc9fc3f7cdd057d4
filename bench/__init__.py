"""bench — the harness's benchmarks: the mock against raw-asyncio baselines, the load client's
accuracy and capacity, and the reference server's overhead.

`python -m bench.bench_mockllm`, `bench.bench_loadtests` and `bench.bench_reference` run them; the
stream client (`bench._stream_client`) runs in a process of its own and reads each mock dialect's
wire from the dialect registry; `bench._baselines` are the raw-asyncio servers measured beside the
mock. Not a package of the harness others import.
"""

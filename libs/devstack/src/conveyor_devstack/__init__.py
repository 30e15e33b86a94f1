"""Runs Conveyor's services together as child processes: `make dev` (`conveyor_devstack.dev`),
the end-to-end and fault tests (through `conveyor_testing`'s `stack_factory`) and benchmarks."""

"""Root suite: end-to-end tests that drive the whole stack (every service and real workers as
processes) over HTTP. Fixtures come from the `conveyor_testing` pytest plugin."""

"""Every child's line on the terminal carries its `[name]`."""

import io

from conveyor_devstack.output import LogFiles, Terminal


def test_prefixes_each_line_with_the_process_name():
    stream = io.StringIO()
    terminal = Terminal(stream, colour=False)
    terminal.write_line("api-gateway", b"started\n")
    terminal.write_line("worker-1", b"ready\r\n")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[api-gateway]")
    assert lines[0].endswith(" started")
    assert lines[1].startswith("[worker-1]")
    assert lines[1].endswith(" ready")


def test_colours_differ_per_process_and_are_reset():
    stream = io.StringIO()
    terminal = Terminal(stream, colour=True)
    terminal.write_line("a", b"x\n")
    terminal.write_line("b", b"y\n")
    first, second = stream.getvalue().splitlines()
    assert first.startswith("\x1b[")
    assert "\x1b[0m" in first
    assert first.split("m", 1)[0] != second.split("m", 1)[0]


def test_undecodable_bytes_do_not_break_the_stream():
    stream = io.StringIO()
    Terminal(stream, colour=False).write_line("w", b"\xff\xfe ok\n")
    assert stream.getvalue().rstrip().endswith("ok")


def test_log_files_one_per_process(tmp_path):
    logs = LogFiles(tmp_path / "logs")
    logs.write_line("job-service", b"one\n")
    logs.note("hello")
    assert (tmp_path / "logs" / "job-service.log").read_text() == "one\n"
    assert (tmp_path / "logs" / "devstack.log").read_text() == "hello\n"

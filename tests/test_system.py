"""The real System seam: streamed commands, and on a terminal the pty that lets pip/uv/apt draw progress."""
import sys

from torch_setup.system import NOT_FOUND, System

PROGRESS = ("import sys, time\n"
            "for i in range(3):\n"
            "    sys.stdout.write('\\x1b[32mprogress %d\\x1b[0m\\r' % i); sys.stdout.flush(); time.sleep(0.02)\n"
            "print('done'); print('oops', file=sys.stderr); sys.exit(3)\n")


def test_on_a_terminal_each_redraw_is_a_line_without_colour():
    system, lines = System(), []
    system.tty = True
    res = system.run([sys.executable, "-c", PROGRESS], on_line=lines.append)
    assert lines == ["progress 0", "progress 1", "progress 2", "done", "oops"]
    assert res.rc == 3 and res.stdout.splitlines()[-1] == "oops"


def test_without_a_terminal_lines_stream_in_order_with_stderr():
    lines = []
    res = System().run([sys.executable, "-c", "print('a'); import sys; print('b', file=sys.stderr)"],
                       on_line=lines.append)
    assert lines == ["a", "b"] and res.ok


def test_a_missing_program_is_127_not_an_exception():
    assert System().run(["/no/such/program"]).rc == NOT_FOUND
    system = System()
    system.tty = True
    assert system.run(["/no/such/program"], on_line=lambda _: None).rc == NOT_FOUND

"""The real System seam: streamed commands, and on a terminal the pty that lets pip/uv/apt draw progress."""
import sys

from torch_setup.host.system import NOT_FOUND, System

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


class NoPts(System):
    """A host where no pseudo-terminal can be opened: what os.openpty raises in a chroot without /dev/pts."""

    def openpty(self):
        import errno
        import os

        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))


def test_without_a_pty_commands_run_on_pipes_with_plain_lines_said_once():
    system, lines = NoPts(), []
    system.tty = True
    res = system.run([sys.executable, "-c", PROGRESS], on_line=lines.append)
    assert res.rc == 3
    assert lines[0] == "(no pseudo-terminal here: No such device; commands run on pipes, with plain lines)"
    assert [line.replace("\x1b[32m", "").replace("\x1b[0m", "") for line in lines[1:]] == \
        ["progress 0", "progress 1", "progress 2", "done", "oops"]  # a pipe: what the program wrote, as it is
    more = []
    assert system.run([sys.executable, "-c", "print('again')"], on_line=more.append).ok
    assert more == ["again"] and system.tty is False


def test_a_missing_program_is_127_not_an_exception():
    assert System().run(["/no/such/program"]).rc == NOT_FOUND
    system = System()
    system.tty = True
    assert system.run(["/no/such/program"], on_line=lambda _: None).rc == NOT_FOUND


# --------------------------------------------------------------------------------------------- started jobs

WAITER = ("import sys\n"
          "print('warning: ' + 'x' * 200, file=sys.stderr)\n"
          "line = sys.stdin.readline().strip()\n"
          "print('got ' + line)\n"
          "sys.exit(0 if line == 'go' else 4)\n")


def test_a_started_job_waits_for_its_line_and_keeps_its_output():
    job = System().start([sys.executable, "-c", WAITER])
    res = job.finish("go", timeout=30)
    assert (res.rc, res.stdout, res.stderr) == (0, "got go\n", "warning: " + "x" * 200 + "\n")


def test_a_job_that_prints_bytes_that_are_not_utf8_is_read_all_the_same():
    job = System().start([sys.executable, "-c", "import sys; sys.stderr.buffer.write(b'caf\\xe9 \\xff\\n')"])
    assert job.finish("go", timeout=30).stderr == "caf\ufffd \ufffd\n"


def test_a_job_that_ended_before_its_line_is_read_as_it_ended():
    job = System().start([sys.executable, "-c", "import sys; print('broken', file=sys.stderr); sys.exit(5)"])
    job.proc.wait(timeout=30)  # it has ended: the line goes nowhere
    res = job.finish("go", timeout=30)
    assert (res.rc, res.stderr) == (5, "broken\n")


def test_a_job_over_its_time_is_killed_and_is_124():
    job = System().start([sys.executable, "-c", "import time; time.sleep(60)"])
    res = job.finish("go", timeout=0.5)
    assert res.rc == 124 and "timed out after 0.5 s" in res.stderr
    assert job.proc.poll() is not None


def test_a_cancelled_job_is_killed():
    job = System().start([sys.executable, "-c", WAITER])
    job.cancel()
    assert job.proc.poll() is not None and job.result.rc != 0


def test_a_job_of_a_missing_program_is_127():
    job = System().start(["/no/such/program"])
    assert job.finish("go").rc == NOT_FOUND
    job.cancel()  # nothing to kill


def test_the_no_pty_note_goes_to_the_notice_line_when_there_is_one():
    system, lines, notes = NoPts(), [], []
    system.tty, system.notice = True, notes.append
    assert system.run([sys.executable, "-c", "print('x')"], on_line=lines.append).ok
    assert lines == ["x"] and notes == ["(no pseudo-terminal here: No such device; commands run on pipes, with plain "
                                        "lines)"]

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


def test_without_a_pty_commands_print_plain_lines_said_once():
    system, lines = NoPts(), []
    system.tty = True
    res = system.run([sys.executable, "-c", PROGRESS], on_line=lines.append)
    assert res.rc == 3
    assert lines[0] == "(no pseudo-terminal here: No such device; commands print plain lines)"
    assert [line.replace("\x1b[32m", "").replace("\x1b[0m", "") for line in lines[1:]] == \
        ["progress 0", "progress 1", "progress 2", "done", "oops"]  # no terminal: what the program wrote, as it is
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
    assert lines == ["x"] and notes == ["(no pseudo-terminal here: No such device; commands print plain "
                                        "lines)"]



# A parent that streams a child's output the way install runs apt. The child prints its pid, waits for its
# parent's death, then writes on (as dpkg's next "Setting up ..." line) and records that it got there.
PARENT = ("import sys\n"
          "from torch_setup.host.system import System\n"
          "System().run([sys.executable, '-c', sys.argv[1]], on_line=lambda line: print(line, flush=True))\n")
CHILD = ("import os, sys, time\n"
         "parent = os.getppid()\n"
         "print(os.getpid(), flush=True)\n"
         "while os.getppid() == parent: time.sleep(0.02)\n"
         "for i in range(1000): print('setting up', i, flush=True)\n"
         "open(sys.argv[1], 'w').write('finished')\n")


def test_a_streamed_command_outlives_a_kill_9_of_torch_setup_and_finishes(tmp_path):
    """After `kill -9` of torch-setup alone, the command it streamed runs on and can still write its output (on
    a pipe its first line after the kill would be its end, by SIGPIPE): dpkg finishes configuring."""
    import os
    import signal
    import subprocess
    import time

    marker = tmp_path / "finished"
    program = PARENT.replace("sys.argv[1]]", f"sys.argv[1], {str(marker)!r}]")
    parent = subprocess.Popen([sys.executable, "-c", program, CHILD], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert parent.stdout is not None
    first = parent.stdout.readline()  # the child runs: the line it printed came through the parent
    assert first.strip().isdigit(), first
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the command died with torch-setup"
    assert marker.read_text() == "finished"


def test_a_daemon_the_command_leaves_behind_does_not_hold_the_run():
    """A postinst that starts a service leaves a process holding the command's output: the run ends with the
    command, not with the daemon (on a pipe it waited for the daemon's end)."""
    import time

    lines = []
    started = time.monotonic()
    res = System().run(["/bin/sh", "-c", "sleep 30 & echo started"], on_line=lines.append)
    assert res.ok and lines == ["started"]
    assert time.monotonic() - started < 20


def test_a_streamed_command_over_its_time_is_stopped_with_its_children_and_is_124():
    lines = []
    res = System().run(["/bin/sh", "-c", "echo before; sleep 30; echo after"], on_line=lines.append, timeout=1)
    assert res.rc == 124 and lines == ["before"] and "timed out after 1 s" in res.stderr


def test_lines_ended_by_cr_lf_split_between_reads_are_one_line_each():
    program = ("import sys, time\n"
               "for part in ['one\\r', '\\ntwo\\r', '\\r\\n', 'thr', 'ee\\rfour']:\n"
               "    sys.stdout.write(part); sys.stdout.flush(); time.sleep(0.2)\n")
    lines = []
    res = System().run([sys.executable, "-c", program], on_line=lines.append)
    assert lines == ["one", "two", "", "three", "four"]
    assert res.stdout == "one\ntwo\n\nthree\nfour"

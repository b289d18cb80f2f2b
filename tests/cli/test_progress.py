"""The CLI's progress by stage: tqdm bars on a terminal (one line per stage, even when stages
interleave), plain lines elsewhere (one per stage and a final one)."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest

from anyi2v.progress import StageProgress, is_terminal


class Terminal(io.StringIO):
    """A stream that says it is a terminal, and the screen its text would leave."""

    def isatty(self) -> bool:
        return True

    def screen(self) -> list[str]:
        """The lines left on screen: carriage returns, newlines, cursor-up and erase-line applied."""
        rows: list[list[str]] = [[]]
        row = column = 0
        for token in re.findall(r"\x1b\[\d*[A-Za-z]|.|\n", self.getvalue()):
            if token.startswith("\x1b"):
                count = int(token[2:-1] or 1)
                if token.endswith("A"):
                    row = max(0, row - count)
                elif token.endswith("K"):
                    del rows[row][column:]
            elif token == "\r":
                column = 0
            elif token == "\n":
                row, column = row + 1, 0
                rows.extend([] for _ in range(row + 1 - len(rows)))
            else:
                line = rows[row]
                line.extend(" " * (column + 1 - len(line)))
                line[column] = token
                column += 1
        return ["".join(line).rstrip() for line in rows if "".join(line).strip()]


def run_pipeline(progress: StageProgress) -> None:
    """The stages a generation reports: inversion, then optimization interleaved with the first
    sampling steps (optimization reports before each iteration, and 30/30 after its last), then decode."""
    for done in range(21):
        progress("inversion", done, 20)
    for step in range(25):
        if step < 6:
            for iteration in range(5):
                progress("optimization", step * 5 + iteration, 30)
        if step == 5:
            progress("optimization", 30, 30)
        progress("sampling", step, 25)
        progress("sampling", step + 1, 25)
    for frame in range(17):
        progress("decode", frame, 16)
    progress.finish()


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    assert not is_terminal(stream)
    run_pipeline(StageProgress(stream, mininterval=0))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [re.sub(r" [\d.]+ s$", "", line) for line in lines] == [
        "   inversion [20/20]",
        "optimization [30/30]",
        "    sampling [25/25]",
        "      decode [16/16]",
        "        done: 4 stages in",
    ]


def test_one_bar_per_stage_on_a_terminal() -> None:
    terminal = Terminal()
    assert is_terminal(terminal)
    run_pipeline(StageProgress(terminal, mininterval=0))
    assert "\r" in terminal.getvalue()  # drawn as bars, redrawn in place
    screen = terminal.screen()
    assert [line.split(":")[0].strip() for line in screen] == ["inversion", "optimization", "sampling", "decode"]
    for line, counts in zip(screen, ["20/20", "30/30", "25/25", "16/16"], strict=True):
        assert f"| {counts} [" in line
    assert "done:" not in terminal.getvalue()  # the bars say it all
    assert terminal.getvalue().endswith("\n")


def test_stages_in_turn_each_get_their_own_bar_and_a_stage_may_come_back() -> None:
    terminal = Terminal()
    progress = StageProgress(terminal, mininterval=0)
    for mode in ("no_control", "anyi2v", "no_control"):
        for shot in range(1, 4):
            progress(mode, shot, 3)
    progress.finish()
    assert [line.split(":")[0].strip() for line in terminal.screen()] == ["no_control", "anyi2v", "no_control"]


def test_a_note_is_one_plain_line_and_a_bar_line_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = StageProgress(stream, mininterval=0)
    progress.note("queued", "2 job(s) ahead")
    progress.note("queued", "1 job(s) ahead")
    progress("sampling", 1, 1)
    progress.finish()
    assert [line.rsplit(" ", 2)[0] if "[" in line else line for line in stream.getvalue().splitlines()][:2] == [
        "      queued 2 job(s) ahead",
        "    sampling [1/1]",
    ]
    terminal = Terminal()
    progress = StageProgress(terminal, mininterval=0)
    progress.note("queued", "2 job(s) ahead")
    progress.note("queued", "1 job(s) ahead")
    progress("sampling", 1, 1)
    progress.finish()
    assert terminal.screen()[0] == "      queued 1 job(s) ahead"
    assert terminal.screen()[1].startswith("    sampling: 100%")


def test_leaving_the_block_on_an_error_closes_the_bars_without_the_final_line() -> None:
    stream = io.StringIO()

    def fail_midway() -> None:
        with StageProgress(stream, mininterval=0) as progress:
            progress("sampling", 3, 25)
            raise RuntimeError("the model broke")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert re.fullmatch(r"    sampling \[3/25\] [\d.]+ s\n", stream.getvalue())


def test_stderr_at_call_time_is_the_default_stream(capsys: pytest.CaptureFixture[str]) -> None:
    with StageProgress() as progress:
        progress("decode", 2, 2)
        progress.finish()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("      decode [2/2]")


def test_a_stage_is_timed_from_the_report_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eval reports a mode only once a shot is done: its time still starts where the mode before ended."""
    now = [0.0]
    monkeypatch.setattr("anyi2v.progress.time", SimpleNamespace(monotonic=lambda: now[0]))
    stream = io.StringIO()
    progress = StageProgress(stream, width=10)
    for moment, mode in ((5.0, "no control"), (12.0, "AnyI2V")):
        now[0] = moment
        progress(mode, 1, 1)
    now[0] = 13.0
    progress.finish()
    assert stream.getvalue().splitlines() == [
        "no control [1/1] 5.0 s",
        "    AnyI2V [1/1] 7.0 s",
        "      done: 2 stages in 13.0 s",
    ]

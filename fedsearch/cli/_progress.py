"""Live progress of a study in the terminal."""

from __future__ import annotations

import optuna
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedsearch._units import format_bytes
from fedsearch.federated import RoundRecord
from fedsearch.trial import ProgressReporter


class RichProgress(ProgressReporter):
    """A trials bar, a rounds bar, and one line per finished trial."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._trials = self.bars.add_task("trials", total=None, visible=False)
        self._rounds = self.bars.add_task("rounds", total=None, visible=False)

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bars.stop()

    def teacher_started(self, rounds: int) -> None:
        """Show the teacher's rounds."""
        self.bars.update(
            self._rounds, description="teacher rounds", total=rounds, completed=0, visible=True
        )

    def teacher_finished(
        self,
        val_accuracy: float,
        test_accuracy: float,
        cached: bool,
        *,
        pretrained: str | None = None,
    ) -> None:
        """Report the teacher and where it came from."""
        origin = "cached" if cached else "trained"
        if pretrained is not None:
            origin = f"loaded from the pretrained file {pretrained}"
        accuracies = f"val accuracy {val_accuracy:.4f}, test accuracy {test_accuracy:.4f}"
        self.console.print(f"teacher ({origin}): {accuracies}", markup=False, soft_wrap=True)

    def trials_started(self, planned: int | None, already_finished: int) -> None:
        """Show the trials bar."""
        if already_finished:
            self.console.print(f"joining the study: {already_finished} trials already finished")
        self.bars.update(self._trials, total=planned, completed=0, visible=True)

    def trial_started(self, number: int, rounds: int) -> None:
        """Reset the rounds bar for a new trial."""
        self.bars.update(
            self._rounds,
            description=f"trial {number} rounds",
            total=rounds,
            completed=0,
            visible=True,
        )

    def round_finished(self, record: RoundRecord) -> None:
        """Advance the rounds bar."""
        self.bars.update(self._rounds, completed=record.round)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Advance the trials bar and print the trial's outcome."""
        self.bars.advance(self._trials)
        if trial.values is None:
            error = trial.user_attrs.get("error_type")
            reason = f" ({error}: {trial.user_attrs.get('error')})" if error else ""
            self.console.print(f"trial {trial.number}: {trial.state.name}{reason}", markup=False)
            return
        accuracy, model_bytes, comm_bytes, *extras = trial.values
        names = study.metric_names or [f"objective {i}" for i in range(len(trial.values))]
        shown = "".join(
            f"  {name} {value:.4g}" for name, value in zip(names[3:], extras, strict=True)
        )
        self.console.print(
            f"trial {trial.number}: val acc {accuracy:.4f}  model {format_bytes(model_bytes)}  "
            f"comm {format_bytes(comm_bytes)}{shown}  "
            f"({trial.user_attrs.get('wall_time_s', 0):.1f} s)",
            markup=False,
            soft_wrap=True,
        )

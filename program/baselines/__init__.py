"""The methods SCALE is compared with, each a ``dspy.Module`` with ``forward(problem)``.

Every ``forward`` returns ``dspy.Prediction(answer, solution, trace)`` like ``program.scale.Scale``.
Uniform System 1 / System 2 are ``Scale`` with tau = 1 / tau = -1 (see ``program.methods``).

May import: ``program.calls``, ``program.clients``, ``program.config``, ``program.ledger``,
``program.signatures``, ``program.voting``. Never ``program.scale``, ``program.methods`` or ``optimize``.
"""

from program.baselines.cot import CoT
from program.baselines.forced import BudgetForcing
from program.baselines.inftythink import InftyThink, split_summary
from program.baselines.majority import MajorityVote, majority

__all__ = ["CoT", "BudgetForcing", "InftyThink", "MajorityVote", "majority", "split_summary"]

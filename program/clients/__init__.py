"""Everything between a ``dspy.LM`` of ours and a server: the HTTP path and what shapes a request.

- ``transport``: the one door to servers (chat and text completions through litellm, retries,
  the response cache, usage into the ledger); ``replicas`` spreads requests over several servers;
  ``failures`` says which failures are worth retrying; ``limits`` bounds the requests each server
  gets at once (one limiter per server, shared by every thread of the process); ``replies`` reads
  what a reply says (answer and thinking, the server's timings, logprobs);
- ``context``: the context window and the ``max_tokens`` clamp;
- ``engine``: DSPy's engine contract over the transport; ``lm`` builds a run's ``dspy.LM`` objects;
- ``templates``: client-side chat templates for ``/v1/completions``;
- ``budget_forcing``: s1 budget forcing over text continuation.

May import: ``program.config``, ``program.errors``, ``program.ledger`` (and ``data``). Never SCALE,
the baselines or the test doubles.
"""

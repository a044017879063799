"""Learned schedulers: PPO / MaskablePPO agents trained on the LLM-serving env.

* :mod:`agents.actions`: the ``slo`` action space (scheduling modes around ``slo_aware``) and
  the env factory shared by training and evaluation;
* :mod:`agents.train`: ``llm-serving train`` (model zip + sidecar JSON + training curve CSV);
* :mod:`agents.policy`: :class:`~agents.policy.TrainedModel`, a trained model acting through
  its env, and :class:`~agents.policy.LearnedScheduler`, the same policy as a plain scheduler
  (``simulate(cfg, "ppo:PATH")``);
* :mod:`agents.evaluate`: ``llm-serving evaluate`` (learned vs hand-written schedulers on
  held-out seeds, mean ± 95% CI, paired comparison with the best baseline);
* ``agents/zoo/``: shipped models, each with its sidecar (the command that made it) and its
  training curve.

torch and stable-baselines3 are imported only when a model is trained or loaded.
"""

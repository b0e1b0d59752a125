"""Judging a replay: the per-request result and the rules read from it (``result``), comparing
answers, learned noise, summaries, the verdict, the report and HTML."""

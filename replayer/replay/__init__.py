"""rewind-replay: the command (``cli``), its flags (``parser``) checked into ``Options``
(``options``), the phases that read the source, plan and run (``phases``) and those that judge
and report (``judging``)."""

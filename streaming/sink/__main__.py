"""`python -m streaming.sink`: the sink's worker process (what `f2 sink` supervises)."""

from streaming.sink.daemon import main

raise SystemExit(main())

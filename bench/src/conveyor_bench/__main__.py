from conveyor_bench.cli import main

raise SystemExit(main())

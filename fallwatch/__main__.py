from fallwatch.cli import main

raise SystemExit(main())

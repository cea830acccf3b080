from pycompose.cli.main import main

raise SystemExit(main())

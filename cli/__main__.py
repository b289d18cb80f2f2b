from anyi2v.cli import main

raise SystemExit(main())

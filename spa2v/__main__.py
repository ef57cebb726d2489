from spa2v.cli import main

raise SystemExit(main())

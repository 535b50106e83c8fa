from robustviz.cli import main

raise SystemExit(main())

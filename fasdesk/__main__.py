from fasdesk.cli import main

raise SystemExit(main())

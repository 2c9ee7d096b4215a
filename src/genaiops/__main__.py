from genaiops.cli.main import main

main()

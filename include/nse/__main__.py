from include.nse.cli import main

main()

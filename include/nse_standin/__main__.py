from include.nse_standin.cli import main

main()

from effbench.cli import main

main()

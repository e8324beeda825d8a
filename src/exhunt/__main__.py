from exhunt.cli import main

main()

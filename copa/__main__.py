from copa.cli.main import run

run()

"""The Textual workstation. Imported only when `copa` runs in a terminal with no command."""


def run_tui() -> None:
    from copa.tui.app import CopaApp

    CopaApp().run()

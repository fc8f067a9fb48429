"""The daemon: the long-running face that runs scheduled jobs (see ``service.Daemon``)."""

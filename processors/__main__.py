"""`python -m processors [views|chatviews] worker ...`: the Faust worker of one component.

Without a component it runs the pipeline probe (the `processors` component). `views` and
`chatviews` run the projector engine (`processors.engine`) on the ticketing, resp. chat and
social journals, each as a Faust app (and consumer group) of its own. The component is named
on the command line, not only in the environment, so that `boxoffice status` tells the three
workers apart by their command lines. Agents are imported here, never by `processors.app`,
so that no module imports itself back.
"""

import logging
import os
import sys

ENGINE_COMPONENTS = ("views", "chatviews")

if len(sys.argv) > 1 and sys.argv[1] in ENGINE_COMPONENTS:
    # Before the settings are read: the component is the Faust app id.
    os.environ["BOXOFFICE_PROCESSOR_ID"] = sys.argv.pop(1)

from processors.app import app, await_topics, settings  # noqa: E402

if settings.processor_id in ENGINE_COMPONENTS:
    from processors import engine

    projection = engine.PROJECTIONS[settings.processor_id]
    # Dead letters name the projection (`origin-consumer`), as its checkpoints do.
    chosen = projection(settings, engine.faust_park(app, settings, projection.name))
    engine.install(app, chosen)
    topics = list(chosen.topics)
else:
    from processors import probe

    topics = [probe.commands.get_topic_name(), probe.events.get_topic_name()]

if "worker" in sys.argv:
    await_topics(topics)
try:
    app.main()
except SystemExit as done:
    # Faust's last words are the same whether it stopped cleanly or crashed: say which, so an
    # operator (and the supervision tests) can tell a clean stop from a death.
    if "worker" in sys.argv:
        log = logging.getLogger("boxoffice.processors")
        if done.code in (0, None):
            log.info("%s stopped", settings.processor_id)
        else:
            log.error("%s exited with status %s", settings.processor_id, done.code)
    raise

"""Personalised content: Mustache templates filled from profiles and recommendations.

    content/slots.yaml (manifest) --manifest--> Library: slots, their templates and rules
    profile + request + recommended items --variables--> the render context (no personal
        data: pseudonymised ids, segment, tastes, context, catalogue fields)
    slot rules or an experiment assignment --slots.choose--> a template
        --render--> Rendered (HTML, headline, call to action, items); any template error
        or missing variable renders the slot's fallback instead, with the error kept
    lint: unknown variables per template      push: signed webhooks through an outbox
    preview: one HTML page with every variant of a slot for one user

Everything here is pure (files in, strings out) except `push`, which owns its outbox and
HTTP delivery; serving.content puts `/content` on top of it.
"""

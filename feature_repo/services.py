"""Feature services: exactly what each model version reads."""

from context_views import item_request_freshness, user_request_context
from entities import OWNER
from feast import FeatureService
from item_views import item_daily_popularity, item_profile_catalog
from realtime_views import user_realtime_session
from user_views import (
    user_daily_affinity,
    user_daily_context,
    user_daily_engagement,
    user_daily_rfm,
    user_profile_demographics,
)

USER_VIEWS = [
    user_profile_demographics,
    user_daily_engagement,
    user_daily_rfm,
    user_daily_affinity,
    user_daily_context,
    user_realtime_session,
    user_request_context,
]

retrieval_v1 = FeatureService(
    name="retrieval_v1",
    features=USER_VIEWS,
    description="Query-tower inputs of the two-tower retriever: who the user is, what they "
    "did, what they are doing now and the request context.",
    owner=OWNER,
    tags={"model": "retrieval", "version": "1"},
)

ranking_v1 = FeatureService(
    name="ranking_v1",
    features=[*USER_VIEWS, item_profile_catalog, item_daily_popularity, item_request_freshness],
    description="Ranker inputs: the retrieval features plus item catalogue and popularity.",
    owner=OWNER,
    tags={"model": "ranking", "version": "1"},
)

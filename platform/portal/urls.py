from django.contrib.auth import views as auth_views
from django.urls import path

from . import access_views, budget_views, defense_views, job_views, lineage_views, release_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/token/", views.rotate_token, name="account-token"),
    path("organisations/new/", views.create_organisation, name="organisation-create"),
    path("users/new/", views.create_user, name="user-create"),
    path("applications/new/", views.submit_application, name="application-submit"),
    path("applications/<int:pk>/decide/", views.decide_application, name="application-decide"),
    path("applications/<int:pk>/resubmit/", access_views.resubmit_application, name="application-resubmit"),
    path("licences/<int:pk>/download/", access_views.download_licence, name="licence-download"),
    path("licences/<int:pk>/change/", access_views.change_licence, name="licence-change"),
    path("releases/<int:pk>/download/", access_views.download_release, name="release-download"),
    path("leaks/", access_views.trace_leak, name="leak-trace"),
    path("datasets/<slug:slug>/", release_views.dataset_page, name="dataset-page"),
    path("datasets/<slug:slug>/ingest/", release_views.ingest, name="dataset-ingest"),
    path("datasets/<slug:slug>/release/", release_views.start_release, name="dataset-release"),
    path("releases/<int:pk>/", release_views.release_page, name="release-page"),
    path("releases/<int:pk>/publish/", release_views.publish, name="release-publish"),
    path("releases/<int:pk>/files/<str:fmt>/", release_views.release_file, name="release-file"),
    path("events/", views.events, name="events"),
    path("events/verify/", views.start_verification, name="events-verify"),
    path("lineage/", lineage_views.lineage_page, name="lineage"),
    path("alerts/<int:pk>/acknowledge/", defense_views.acknowledge, name="alert-acknowledge"),
    path("tasks/<uuid:pk>/", views.task_detail, name="task-page"),
    path("budgets/<int:pk>/", budget_views.budget_page, name="budget-page"),
    path("budgets/<int:pk>/refund/", budget_views.refund, name="budget-refund"),
    path("jobs/", job_views.job_list, name="job-list"),
    path("jobs/new/", job_views.submit_job, name="job-submit"),
    path("jobs/<int:pk>/", job_views.job_page, name="job-page"),
    path("jobs/<int:pk>/<str:decision>/", job_views.decide_job, name="job-decide"),
    path("models/<int:pk>/", job_views.model_page, name="model-page"),
]

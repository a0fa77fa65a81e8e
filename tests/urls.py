"""No views: error-report tests need a URLconf to render the technical 500 page."""

urlpatterns: list[object] = []

"""The suanli server: the API (`api`), its wiring with the store, Ray and the controller
(`service`), and how local clients find or start one (`local`)."""

API_VERSION = 1  # the HTTP API's version: a client refuses a server that speaks another

"""The suanli server: the HTTP app (`app`) with one router per feature (`routes`), their request
and response models (`schemas`) and dependencies (`deps`); the business rules (`domain`), free of
HTTP; accounts and tokens (`auth`); the process's wiring with the store, Ray and the controller
(`service`); and how local clients find or start one (`local`)."""

API_VERSION = 1  # the HTTP API's version: a client refuses a server that speaks another

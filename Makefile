# The project's verbs. Each is a thin line over Go's own tools.
GO            ?= go
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS          := ./...

.PHONY: run test lint vet unit compose bench fuzz build sim

run: ## start the whole product with an embedded Redis and ROX simulator
	$(GO) run ./cmd/roxd dev

build:
	$(GO) build -o bin/roxd ./cmd/roxd

sim: ## the ROX simulator alone
	$(GO) run ./cmd/roxd sim

test: vet lint compose unit ## what CI runs

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) run $(STATICCHECK) $(PKGS)

compose: ## validate docker-compose.yml (no Docker engine needed)
	./scripts/compose-check.sh

unit:
	./scripts/with-redis.sh ./scripts/with-cluster.sh $(GO) test -race -count=1 -timeout 15m $(PKGS)

bench: ## micro-benchmarks (codec, encoding)
	./scripts/with-redis.sh $(GO) test -run '^$$' -bench . -benchmem $(PKGS)

fuzz: ## each fuzz target for FUZZTIME (default 30s); local only, not in CI
	./scripts/with-redis.sh ./scripts/fuzz.sh $${FUZZTIME:-30s}

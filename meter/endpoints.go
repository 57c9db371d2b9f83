package meter

import (
	"context"
	"time"
)

// EndpointLister is implemented by stores that can list an account's
// endpoint templates over a time range (the ledger does, from its daily
// aggregates). The meter uses it to keep the per-account template cap
// across restarts.
type EndpointLister interface {
	EndpointUsage(ctx context.Context, account string, from, to time.Time) ([]EndpointUsage, error)
}

// endpointSeeder fills an account's template set at the first call of a
// period. It runs under the account's lock, once per account and period:
// one short read of at most a month of daily aggregates.
type endpointSeeder struct{ m *Meter }

func (e endpointSeeder) seed(account string, p Period) map[string]struct{} {
	set := map[string]struct{}{}
	lister, ok := e.m.store.(EndpointLister)
	if !ok {
		return set
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := lister.EndpointUsage(ctx, account, p.Start, p.End.Add(-time.Nanosecond))
	if err != nil {
		return set // the cap then counts from zero; metering must not fail on it
	}
	for _, r := range rows {
		if r.Endpoint != OtherEndpoint {
			set[r.Endpoint] = struct{}{}
		}
	}
	return set
}

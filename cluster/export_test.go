package cluster

import (
	"context"

	"github.com/meterd/meterd/meter"
)

// Abandon stops the loops and drops the pool without returning held
// allowance: what a killed process leaves behind in Postgres.
func (c *Cluster) Abandon() {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	c.leases.stop()
	c.db.Close()
}

// CountRounds runs count exchanges by hand, one per call of the returned
// function, sharing state between rounds as the loop does.
func (c *Cluster) CountRounds(local Applier) func() error {
	st := &countState{published: map[peerKey]meter.Counter{}, period: map[string]int64{},
		closing: map[peerKey]closingPeriod{}}
	return func() error { return c.exchangeCounts(context.Background(), local, st) }
}

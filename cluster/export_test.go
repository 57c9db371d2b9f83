package cluster

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

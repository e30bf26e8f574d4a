// Package tenant owns tenants: who a request acts for, and (as Nebula
// grows) their tokens, quotas and partition strategy. Every stored object
// carries its tenant id, and every repository method takes one, so a query
// cannot forget it.
package tenant

// Default is the tenant of every request when auth is off (the desktop
// preset), and of objects created before tenants were enabled.
const Default = "default"

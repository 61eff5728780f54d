package client

import (
	"context"
	"errors"
	"sync/atomic"
)

// Pool is a fixed set of Clients (each one connection) for callers that
// want connections of their own: Acquire hands out a Client exclusively,
// for instance to run a transaction without sharing its connection with
// another transaction (ignetcd design, section 3); Shared hands out Clients
// round-robin for concurrent non-transactional work.
type Pool struct {
	clients []*Client
	idle    chan *Client
	next    atomic.Uint64
}

// NewPool returns a pool of size clients over cfg; they connect on first
// use.
func NewPool(cfg Config, size int) (*Pool, error) {
	if size <= 0 {
		return nil, errors.New("ignite: pool size must be positive")
	}
	p := &Pool{idle: make(chan *Client, size)}
	for i := 0; i < size; i++ {
		c, err := New(cfg)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.clients = append(p.clients, c)
		p.idle <- c
	}
	return p, nil
}

// Acquire takes a Client for exclusive use, waiting until one is free; give
// it back with Release.
func (p *Pool) Acquire(ctx context.Context) (*Client, error) {
	select {
	case c := <-p.idle:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Release returns a Client taken with Acquire.
func (p *Pool) Release(c *Client) { p.idle <- c }

// Shared returns one of the pool's Clients, round-robin, without taking it.
func (p *Pool) Shared() *Client {
	return p.clients[p.next.Add(1)%uint64(len(p.clients))]
}

// Close closes every Client.
func (p *Pool) Close() error {
	for _, c := range p.clients {
		c.Close()
	}
	return nil
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// OperatorActions counts operator actions on roxd's asynq tasks and queue,
// by action (run, delete, archive, pause, unpause). An action on a task is
// counted once, where roxd applies its effect to the task's messages (the
// dashboard's request, the worker's sweep that notices an asynq CLI action,
// or the handler running an archived or scheduled task early); pause and
// unpause are counted when made through the dashboard.
var OperatorActions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: ns, Name: "operator_actions_total", Help: "Operator actions on tasks and queues, by action.",
}, []string{"action"})

// OperatorActionNames are the label values of OperatorActions.
var OperatorActionNames = []string{"run", "delete", "archive", "pause", "unpause"}

func init() {
	Registry.MustRegister(OperatorActions)
	for _, a := range OperatorActionNames {
		OperatorActions.WithLabelValues(a)
	}
}

// SweepRepairs counts asynq tasks of live batches the sweep found in a
// state asynq never leaves and repaired, by what it found: active (outside
// the active list or the lease set), retry, scheduled (outside their set)
// or zombie (a hash without a message).
var SweepRepairs = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: ns, Name: "sweep_task_repairs_total", Help: "Send tasks found in a state asynq never leaves and repaired by the sweep, by what was found.",
}, []string{"found"})

func init() {
	Registry.MustRegister(SweepRepairs)
	for _, f := range []string{"active", "retry", "scheduled", "zombie"} {
		SweepRepairs.WithLabelValues(f)
	}
}

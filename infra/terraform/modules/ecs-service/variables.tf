# ------------------------------------------------------------------ identity

variable "name" {
  description = "Name of the ECS cluster, service and task family; the log group is /ecs/<name>, the roles <name>-execution and <name>-task, the CPU scaling policy <name>-cpu."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name))
    error_message = "name must be 3-24 lowercase letters, digits and hyphens."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- containers

variable "containers" {
  description = "Container definitions of the task (ECS JSON shape, as HCL objects), without logConfiguration: the module sends each container's logs to the log group under the stream prefix <container name>. The execution role may read exactly the Secrets Manager secrets their `secrets` reference."
  type        = any

  validation {
    condition     = length(var.containers) > 0 && alltrue([for c in var.containers : can(c.name) && !can(c.logConfiguration)])
    error_message = "containers must be a non-empty list of container definitions, each with a name and without logConfiguration."
  }
}

variable "volumes" {
  description = "Names of task volumes (bind mounts the containers share)."
  type        = list(string)
  default     = []
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "log_retention_days" {
  description = "Retention of the log group."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key of the log group and of the secrets (the execution role may decrypt with it). Null uses AWS managed keys."
  type        = string
  default     = null
}

# ----------------------------------------------------------------------- IAM

variable "execution_policy_name" {
  description = "Name of the execution role's inline policy."
  type        = string
  default     = "log-secrets"
}

variable "ecr_repository_arns" {
  description = "ECR repositories the execution role may pull from (adds ecr:GetAuthorizationToken and the pull actions). Null grants no ECR access (public images)."
  type        = list(string)
  default     = null
}

variable "task_policy_name" {
  description = "Name of the task role's inline policy."
  type        = string
}

variable "task_policy_statements" {
  description = "IAM policy statements of the task role (what the containers may do). With enable_execute_command the module appends the EcsExec statement."
  type        = any

  validation {
    condition     = length(var.task_policy_statements) > 0
    error_message = "task_policy_statements needs at least one statement."
  }
}

# ------------------------------------------------------------------- service

variable "subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs."
  type        = bool
  default     = false
}

variable "load_balancers" {
  description = "Target groups the service registers its tasks with: container and port of each."
  type = list(object({
    target_group_arn = string
    container_name   = string
    container_port   = number
  }))
  default = []
}

variable "service_depends_on" {
  description = "Anything the service must be created after (typically the listeners in front of the target groups). Only its dependencies are used, not its value."
  type        = any
  default     = []
}

variable "health_check_grace_period_seconds" {
  description = "How long the service ignores failing load balancer health checks of a new task."
  type        = number
  default     = 60
}

variable "desired_count" {
  description = "Tasks at creation (autoscaling owns the count afterwards; Terraform never resets a running service's count)."
  type        = number
  default     = 2
}

variable "use_capacity_providers" {
  description = "Attach the FARGATE and FARGATE_SPOT capacity providers to the cluster and run the service with a capacity provider strategy (FARGATE weight 1, base min_capacity, plus FARGATE_SPOT at fargate_spot_weight). False runs it with launch type FARGATE."
  type        = bool
  default     = false
}

variable "fargate_spot_weight" {
  description = "Weight of FARGATE_SPOT next to FARGATE (with use_capacity_providers). 0 runs on on-demand Fargate only."
  type        = number
  default     = 0

  validation {
    condition     = var.fargate_spot_weight >= 0
    error_message = "fargate_spot_weight must not be negative."
  }
}

variable "container_insights" {
  description = "CloudWatch Container Insights on the cluster."
  type        = bool
  default     = true
}

variable "enable_execute_command" {
  description = "Allow `aws ecs execute-command` into the tasks (also grants the task role the ssmmessages actions)."
  type        = bool
  default     = false
}

variable "enable_ecs_managed_tags" {
  description = "Let ECS tag the tasks with the cluster and service names."
  type        = bool
  default     = false
}

variable "wait_for_steady_state" {
  description = "Make terraform apply wait until the service is stable."
  type        = bool
  default     = false
}

# --------------------------------------------------------------- autoscaling

variable "enable_autoscaling" {
  description = "Register the service with Application Auto Scaling and track cpu_target_percent between min_capacity and max_capacity. Off creates no scaling resources."
  type        = bool
  default     = true
}

variable "min_capacity" {
  description = "Fewest tasks under autoscaling (and the FARGATE base with use_capacity_providers)."
  type        = number
  default     = 2
}

variable "max_capacity" {
  description = "Most tasks under autoscaling."
  type        = number
  default     = 6

  validation {
    condition     = var.max_capacity >= var.min_capacity && var.min_capacity >= 1
    error_message = "max_capacity must be at least min_capacity, and min_capacity at least 1."
  }
}

variable "cpu_target_percent" {
  description = "Average service CPU that autoscaling keeps."
  type        = number
  default     = 60
}

variable "name" {
  description = "Name prefix for every resource (for example \"mcp-use1\")."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "create_vpc" {
  description = "Create a VPC with public and private subnets. Set to false to bring your own VPC (vpc_id, public_subnet_ids, private_subnet_ids)."
  type        = bool
  default     = true
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of /20 or larger."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread subnets over when azs is empty."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6
    error_message = "az_count must be between 2 and 6: load balancers and multi-AZ Redis need at least two zones."
  }
}

variable "azs" {
  description = "Availability zones to use. Empty means the first az_count available zones of the region."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.azs) == 0 || length(var.azs) >= 2
    error_message = "azs must name at least two availability zones (or be empty)."
  }
}

variable "public_subnet_cidrs" {
  description = "CIDR blocks of the public subnets (load balancers, NAT gateways), one per zone. Empty means carved from vpc_cidr (/20s from index 0)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "public_subnet_cidrs must be valid IPv4 CIDR blocks."
  }
}

variable "private_subnet_cidrs" {
  description = "CIDR blocks of the private subnets (tasks, Redis), one per zone. Empty means carved from vpc_cidr (/20s from index 8)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs must be valid IPv4 CIDR blocks."
  }
}

variable "enable_nat_gateway" {
  description = "Create NAT gateways so tasks in private subnets reach AWS APIs, image registries and the federation endpoint."
  type        = bool
  default     = true
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for all zones (cheaper, but a zone outage cuts egress for the others)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC id, when create_vpc is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_vpc || var.vpc_id != null
    error_message = "vpc_id is required when create_vpc is false."
  }
}

variable "public_subnet_ids" {
  description = "Existing public subnet ids (at least two zones), when create_vpc is false."
  type        = list(string)
  default     = []

  validation {
    condition     = var.create_vpc || length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids needs at least two subnets when create_vpc is false."
  }
}

variable "private_subnet_ids" {
  description = "Existing private subnet ids (at least two zones), when create_vpc is false."
  type        = list(string)
  default     = []

  validation {
    condition     = var.create_vpc || length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids needs at least two subnets when create_vpc is false."
  }
}

variable "existing_egress_cidr_blocks" {
  description = "Public egress addresses (CIDR) of a brought-your-own VPC, reported in the egress_cidr_blocks output so the federation can allow them."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
